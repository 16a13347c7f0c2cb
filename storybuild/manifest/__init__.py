"""The manifest layer: YAML with line:col → includes → JSON Schema → checks → Jinja text → model."""
