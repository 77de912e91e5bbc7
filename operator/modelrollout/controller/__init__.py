"""The I/O shell: observe the cluster, ask the core, apply its decision."""
