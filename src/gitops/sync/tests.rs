//! Cross-module tests of planning and the state machine.
