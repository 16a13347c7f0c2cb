"""Watch mode: rebuild as sources change, with the live preview."""
