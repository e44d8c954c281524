"""kindslurm: throwaway Kubernetes (kind) clusters inside Slurm jobs."""

__version__ = "0.1.0"
