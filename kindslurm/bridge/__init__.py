"""`kindslurm bridge`: a virtual kubelet that serves Slurm partitions as nodes
of an outer Kubernetes cluster; every pod bound to one becomes one kindslurm
run (its own Slurm job, its own kind cluster), through kindslurm.api.

The parts, by what they do:
  nodes.py, heartbeat.py, lease.py   one Node per partition, kept alive and locked by its Lease
  watch.py, controller.py, tracked.py the pods: list+watch per node, one poll loop for all their jobs
  mapping.py, manifest.py, runs.py    a pod as run options, as the inner cluster's manifest, as a run
  status.py                           what the outer pod's status says
  endpoint.py, logs.py, streaming.py, spdy.py, inner.py
                                      the kubelet endpoint: logs, exec, attach, port-forward
  outer.py                            every call to the outer API server
  main.py                             the pieces wired and run

Why threads around the official client rather than kopf: kopf is built for
operators reconciling custom resources, keeping its progress in annotations
and finalizers on the objects it handles; a kubelet instead watches the pods
of one node (a field selector kopf does not offer per handler), must not put
finalizers on users' pods, and spends most of its time in one periodic poll
of Slurm for every pod at once, which a per-object handler model would turn
into a call per pod. The bridge's own state is small and rebuilt from the
cluster and Slurm after a restart. aiohttp serves the endpoint: it streams a
response chunk by chunk (`logs -f`), speaks WebSocket, and hands over an
upgraded connection for SPDY.
"""
