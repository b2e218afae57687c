"""zray's web dashboard: a process of its own beside the head node, serving the cluster's
state (nodes, jobs, actors, tasks, placement groups, objects, logs) to a browser and Ray's
state endpoints to tools. It is a client of the head like the state API (`zray.util.state`),
which it uses; the head and nodes know nothing of it. See docs/architecture.md."""
