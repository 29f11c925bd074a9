"""The demo store: a real retailer's customers, orders, catalog and policy, loaded into the domain store."""
