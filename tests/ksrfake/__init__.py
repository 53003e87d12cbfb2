"""An HTTP fake of the Kubernetes list/watch API (the one thing that cannot run here)."""
