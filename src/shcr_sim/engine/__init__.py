"""The central integration engine: inbound, durable queue, sequencer, release."""
