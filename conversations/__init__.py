"""The conversation domain: the turn service, the agents' desk, customer merging and the owner of the checkpointed
threads, wired by composition (see `product.services`)."""
