"""Pure renderers: a `Plan` or an apply result to text, one function per format."""
