"""com.microsoft contrib ops that ONNX Runtime's tools write (reference semantics: ORT's ContribOperators.md)."""

MS = "com.microsoft"
