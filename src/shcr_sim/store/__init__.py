"""The shared record store: current and historic versions of every resource."""
