"""Embedded backends: everything needed to build an animatic film with pip packages only."""
