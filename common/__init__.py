"""The floor under every package of this project: small things the layers above all need.

Rule: `common` imports only the standard library and nothing of the project (`distill`,
`teachers`, `students`, `exports` all import it; it imports none of them). Third-party code is
imported lazily, inside the one function that needs it (sacrebleu for chrF++), so importing
`common` never costs more than the standard library.

What lives here, because two or more layers need the very same logic:
- `files`: atomic file writes and the atomic directory swap;
- `jsonl`: validated JSONL reading;
- `paths`: the user cache directory;
- `metrics`: exact match and chrF++ (one normalisation, scores 0-1);
- `meta`: the `distill.json` record a trained student and its export carry;
- `errors`: UserError, the one exception for mistakes a user can fix;
- `cards`: the Hugging Face card format (YAML front matter, marked sections) of the data,
  student and ONNX cards.
"""
