"""The HTTP app: OpenAI-style chat completions over a registered adapter."""
