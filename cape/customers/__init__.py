"""Customers: identities, merge, orders and the customer 360."""
