"""Usher: a self-hosted invitation service."""
