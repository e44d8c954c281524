"""Interactive clusters (`up`, `down`, `kubeconfig`, `tunnel`): clusters held
by a job until their user ends them, and the ways to reach their API server
from where the user stands (README: Interactive clusters)."""
