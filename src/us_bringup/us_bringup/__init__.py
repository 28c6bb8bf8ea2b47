"""Bring-up of the tracked-ultrasound graph: runner and monitor."""
