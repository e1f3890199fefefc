"""The OpenAI API surface: request schemas, validation with field-level errors, the OpenAPI doc."""
