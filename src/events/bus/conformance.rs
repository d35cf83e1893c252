//! PLACEHOLDER: the backend-independent test suite (being written by a helper this session).
