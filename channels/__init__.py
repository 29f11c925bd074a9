"""Channel adapters: verify and translate inbound provider payloads, render outbound replies."""
