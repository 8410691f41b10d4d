"""Simulated trusts: population, journeys, vendor flavours, backload and live writers."""
