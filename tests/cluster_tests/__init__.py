"""Offline tests of the cluster tier's library: everything that runs without
a Docker engine (git server, guard, plan, provider wiring, clean-up logic)."""
