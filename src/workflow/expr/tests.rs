//! Table-driven tests of the whole engine: templates, expressions, `when`, and the conformance
//! manifests' tags.

use super::*;
