"""SQL implementations of the ports in `core.ports`, one module per aggregate."""
