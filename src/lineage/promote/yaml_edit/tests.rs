use super::*;

fn set(text: &str, path: &str, value: &str) -> Result<Edit, YamlEditError> {
    set_value(text, &YamlPath::parse(path).expect("test path"), value)
}

fn ok(text: &str, path: &str, value: &str) -> String {
    match set(text, path, value) {
        Ok(e) => {
            assert!(e.changed, "{path}: expected a change");
            e.text
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

fn err(text: &str, path: &str, value: &str) -> YamlEditError {
    match set(text, path, value) {
        Ok(e) => panic!("{path}: expected an error, got {:?}", e.text),
        Err(e) => e,
    }
}

const VALUES: &str = "\
# Values for the prod environment.
replicaCount: 2   # scaled by HPA

model:
  # the artifact the server loads
  uri: s3://models/recommender/3/model.joblib  # set by cairn
  version: 3
  name: \"recommender\"
  digest: 'sha256:aaaa'

image:
  repository: ghcr.io/acme/serve
  tag: v1.2.0
";

#[test]
fn replaces_only_the_value_bytes() {
    let out = ok(
        VALUES,
        "model.uri",
        "s3://models/recommender/4/model.joblib",
    );
    assert_eq!(
        out,
        VALUES.replace(
            "s3://models/recommender/3/model.joblib",
            "s3://models/recommender/4/model.joblib"
        )
    );
    assert_eq!(
        ok(VALUES, "model.version", "4"),
        VALUES.replace("version: 3", "version: 4")
    );
    assert_eq!(
        ok(VALUES, "image.tag", "v1.3.0"),
        VALUES.replace("v1.2.0", "v1.3.0")
    );
    assert_eq!(
        ok(VALUES, "replicaCount", "3"),
        VALUES.replace("Count: 2", "Count: 3")
    );
}

#[test]
fn keeps_the_quoting_style() {
    assert_eq!(
        ok(VALUES, "model.name", "ranker"),
        VALUES.replace("\"recommender\"", "\"ranker\"")
    );
    assert_eq!(
        ok(VALUES, "model.digest", "sha256:bbbb"),
        VALUES.replace("'sha256:aaaa'", "'sha256:bbbb'")
    );
    // A single quote inside a single-quoted value is doubled.
    assert_eq!(
        ok(VALUES, "model.digest", "it's"),
        VALUES.replace("'sha256:aaaa'", "'it''s'")
    );
    // A double-quoted value escapes.
    assert_eq!(
        ok(VALUES, "model.name", "a\"b\\c"),
        VALUES.replace("\"recommender\"", "\"a\\\"b\\\\c\"")
    );
}

#[test]
fn quotes_values_that_would_be_misread() {
    for (value, written) in [
        ("1.10", "\"1.10\""),
        ("yes", "\"yes\""),
        ("on", "\"on\""),
        ("Off", "\"Off\""),
        ("null", "\"null\""),
        ("~", "\"~\""),
        ("*star", "\"*star\""),
        ("&amp", "\"&amp\""),
        ("!tag", "\"!tag\""),
        ("#hash", "\"#hash\""),
        ("a: b", "\"a: b\""),
        ("a #b", "\"a #b\""),
        ("0x1F", "\"0x1F\""),
        ("012", "\"012\""),
        ("1e3", "\"1e3\""),
        ("2026-12-07", "\"2026-12-07\""),
        ("", "\"\""),
        (" lead", "\" lead\""),
        ("line\nbreak", "\"line\\nbreak\""),
        ("v1.10", "v1.10"),
        ("1.10-rc1", "1.10-rc1"),
        ("sha256:abcd", "sha256:abcd"),
        ("s3://b/k", "s3://b/k"),
        ("a#b", "a#b"),
    ] {
        assert_eq!(
            ok(VALUES, "image.tag", value),
            VALUES.replace("v1.2.0", written),
            "{value:?}"
        );
    }
}

#[test]
fn integers_stay_integers_only_when_canonical() {
    // version: 3 is an integer: a canonical integer stays plain, anything else is a string.
    assert_eq!(
        ok(VALUES, "model.version", "10"),
        VALUES.replace("version: 3", "version: 10")
    );
    assert_eq!(
        ok(VALUES, "model.version", "1.10"),
        VALUES.replace("version: 3", "version: \"1.10\"")
    );
    assert_eq!(
        ok(VALUES, "model.version", "007"),
        VALUES.replace("version: 3", "version: \"007\"")
    );
    // A string value stays a string even when the new text is a number.
    assert_eq!(
        ok(VALUES, "image.tag", "42"),
        VALUES.replace("v1.2.0", "\"42\"")
    );
}

#[test]
fn no_op_when_the_value_is_already_there() {
    for (path, value) in [
        ("model.version", "3"),
        ("model.name", "recommender"),
        ("image.tag", "v1.2.0"),
        ("model.digest", "sha256:aaaa"),
    ] {
        let e = set(VALUES, path, value).expect("no-op edit");
        assert!(!e.changed, "{path}");
        assert_eq!(e.text, VALUES);
    }
    assert_eq!(
        set(VALUES, "model.version", "4")
            .expect("edit")
            .previous
            .as_deref(),
        Some("3")
    );
}

#[test]
fn inserts_missing_keys_under_their_parent() {
    assert_eq!(
        ok(VALUES, "model.stage", "prod"),
        VALUES.replace("'sha256:aaaa'\n", "'sha256:aaaa'\n  stage: prod\n")
    );
    assert_eq!(
        ok(VALUES, "model.serving.threads", "4"),
        VALUES.replace(
            "'sha256:aaaa'\n",
            "'sha256:aaaa'\n  serving:\n    threads: \"4\"\n"
        )
    );
    assert_eq!(
        ok(VALUES, "canary.model.uri", "s3://x"),
        format!("{VALUES}canary:\n  model:\n    uri: s3://x\n")
    );
    // Under an empty value; the indentation unit of the file (4 here) is used.
    let four = "a:\n    b: 1\nmodel:  # filled by cairn\nz: 1\n";
    assert_eq!(
        ok(four, "model.uri", "s3://x"),
        "a:\n    b: 1\nmodel:  # filled by cairn\n    uri: s3://x\nz: 1\n"
    );
    // An empty value becomes the value.
    assert_eq!(ok("a:\nb: 1\n", "a", "x"), "a: x\nb: 1\n");
    assert_eq!(ok("a: # later\nb: 1\n", "a", "x"), "a: x # later\nb: 1\n");
    // Into an empty or comment-only file, and a file without a final newline.
    assert_eq!(ok("", "model.uri", "u"), "model:\n  uri: u\n");
    assert_eq!(
        ok("# only a comment\n", "k", "v"),
        "# only a comment\nk: v\n"
    );
    assert_eq!(ok("a: 1", "b", "v"), "a: 1\nb: v\n");
    // Keys that need quoting are quoted.
    assert_eq!(
        ok("a: 1\n", "labels.\"app.kubernetes.io/name\"", "x"),
        "a: 1\nlabels:\n  app.kubernetes.io/name: x\n"
    );
    assert_eq!(ok("a: 1\n", "\"yes\"", "x"), "a: 1\n\"yes\": x\n");
}

#[test]
fn insertion_skips_nested_values_and_block_scalars() {
    let text = "model:\n  notes: |\n    line one\n\n    line two\n  # trailing comment\nother: 1\n";
    assert_eq!(
        ok(text, "model.uri", "u"),
        "model:\n  notes: |\n    line one\n\n    line two\n  uri: u\n  # trailing comment\nother: 1\n"
    );
}

#[test]
fn refuses_parents_that_are_not_block_mappings() {
    for (text, path, found) in [
        ("model: {uri: a}\n", "model.uri", "flow mapping"),
        ("model: [a, b]\n", "model.uri", "flow sequence"),
        ("model:\n  - a\n", "model.uri", "a block sequence"),
        ("model: s3://x\n", "model.uri", "a scalar"),
        ("model: null\n", "model.uri", "a scalar"),
        (
            "model:\n  uri:\n    nested: 1\n",
            "model.uri",
            "a block mapping",
        ),
    ] {
        match err(text, path, "v") {
            YamlEditError::WrongShape {
                found: f, path: p, ..
            } => {
                assert_eq!((f, p.as_str()), (found, path), "{text:?}")
            }
            e => panic!("{text:?}: {e:?}"),
        }
    }
    let e = err("model: {uri: a}\n", "model.uri", "v");
    assert_eq!(
        e.to_string(),
        "path \"model.uri\": expected a block mapping at \"model\" (line 1), found flow mapping"
    );
}

#[test]
fn refuses_block_scalars_and_multiline_values() {
    for (text, found) in [
        ("uri: |\n  a\n", "block scalar"),
        ("uri: >-\n  a\n  b\n", "block scalar"),
        ("uri: \"a\n  b\"\n", "multi-line quoted scalar"),
        ("uri: a\n  b\n", "multi-line scalar"),
    ] {
        match err(text, "uri", "v") {
            YamlEditError::WrongShape { found: f, .. } => assert_eq!(f, found, "{text:?}"),
            e => panic!("{text:?}: {e:?}"),
        }
    }
}

const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../base
images:
- name: recommender   # the serving image
  newName: ghcr.io/acme/recommender
  newTag: \"3\"
- name: sidecar
  newTag: v1
";

#[test]
fn kustomize_image_selector() {
    assert_eq!(
        ok(KUSTOMIZATION, "images[name=recommender].newTag", "4"),
        KUSTOMIZATION.replace("newTag: \"3\"", "newTag: \"4\"")
    );
    assert_eq!(
        ok(KUSTOMIZATION, "images[name=sidecar].newTag", "v2"),
        KUSTOMIZATION.replace("newTag: v1", "newTag: v2")
    );
    assert_eq!(
        ok(KUSTOMIZATION, "images[1].newTag", "v2"),
        KUSTOMIZATION.replace("newTag: v1", "newTag: v2")
    );
    // A missing field of the selected item is inserted at the item's column.
    assert_eq!(
        ok(KUSTOMIZATION, "images[name=sidecar].digest", "sha256:ab"),
        format!("{KUSTOMIZATION}  digest: sha256:ab\n")
    );
    // Indented sequences too.
    let indented = "images:\n  - name: recommender\n    newTag: a\n  - name: b\n";
    assert_eq!(
        ok(indented, "images[name=recommender].newTag", "c"),
        indented.replace("newTag: a", "newTag: c")
    );
    assert!(matches!(
        err(KUSTOMIZATION, "images[name=nope].newTag", "4"),
        YamlEditError::NoMatch { .. }
    ));
    assert!(matches!(
        err(KUSTOMIZATION, "images[7].newTag", "4"),
        YamlEditError::NoMatch { .. }
    ));
    assert!(matches!(
        err(
            "images:\n- name: a\n- name: a\n",
            "images[name=a].newTag",
            "4"
        ),
        YamlEditError::Ambiguous { .. }
    ));
    // Items are never created.
    assert!(matches!(
        err("a: 1\n", "images[name=a].newTag", "4"),
        YamlEditError::NoMatch { .. }
    ));
}

#[test]
fn anchors_and_aliases() {
    // Editing an anchored value that aliases repeat would change them too: refused.
    let text = "base: &v 3\nprod:\n  version: *v\n";
    assert!(matches!(
        err(text, "base", "4"),
        YamlEditError::Verification { .. }
    ));
    // An alias itself can be replaced: only that key changes.
    assert_eq!(
        ok(text, "prod.version", "4"),
        "base: &v 3\nprod:\n  version: 4\n"
    );
    // An anchored value without aliases keeps its anchor.
    assert_eq!(ok("a: &x old\n", "a", "new"), "a: &x new\n");
    // Anchored mappings are walked through.
    assert_eq!(ok("m: &m\n  k: 1\n", "m.k", "2"), "m: &m\n  k: 2\n");
}

#[test]
fn crlf_is_kept() {
    let text = "# c\r\nmodel:\r\n  uri: a\r\n";
    assert_eq!(ok(text, "model.uri", "b"), "# c\r\nmodel:\r\n  uri: b\r\n");
    assert_eq!(
        ok(text, "model.version", "2"),
        "# c\r\nmodel:\r\n  uri: a\r\n  version: \"2\"\r\n"
    );
}

#[test]
fn tabs_are_refused() {
    assert_eq!(
        err("model:\n\turi: a\n", "model.uri", "b"),
        YamlEditError::Tab { line: 2 }
    );
    // A tab inside a value is fine.
    assert_eq!(ok("a: x\ty\nb: 1\n", "b", "2"), "a: x\ty\nb: 2\n");
}

#[test]
fn documents_are_edited_alone() {
    let text = "%YAML 1.2\n---\nkind: A\nmeta: 1\n--- # second\nkind: B\nmodel:\n  uri: a\n...\n---\nkind: C\n";
    assert_eq!(ok(text, "model.uri", "b"), text.replace("uri: a", "uri: b"));
    assert!(matches!(
        err(text, "model.version", "2"),
        YamlEditError::NotFoundMultiDoc { documents: 3, .. }
    ));
    assert!(matches!(
        err(text, "kind", "Z"),
        YamlEditError::Ambiguous { .. }
    ));
    // One explicit document.
    assert_eq!(ok("---\na: 1\n", "b", "2"), "---\na: 1\nb: \"2\"\n");
}

#[test]
fn duplicate_keys_are_refused() {
    assert!(matches!(
        err("a: 1\nb: 2\na: 3\n", "b", "4"),
        YamlEditError::NotYaml { .. } | YamlEditError::DuplicateKey { .. }
    ));
}

#[test]
fn unicode_keys_and_values() {
    let text = "modèle:\n  nom: \"récommandeur\"  # é\n  uri: a\n";
    assert_eq!(
        ok(text, "modèle.nom", "推荐"),
        "modèle:\n  nom: \"推荐\"  # é\n  uri: a\n"
    );
    assert_eq!(
        ok(text, "modèle.uri", "ü"),
        text.replace("uri: a", "uri: ü")
    );
    // A byte-order mark is kept.
    assert_eq!(ok("\u{feff}a: 1\n", "a", "2"), "\u{feff}a: 2\n");
}

#[test]
fn invalid_yaml_is_refused() {
    assert!(matches!(
        err("a: [1\n", "a", "2"),
        YamlEditError::NotYaml { .. }
    ));
}

#[test]
fn path_syntax() {
    use Segment::*;
    let key = |s: &str| Key(s.to_string());
    for (raw, want) in [
        ("model.uri", vec![key("model"), key("uri")]),
        (
            "images[name=recommender].newTag",
            vec![
                key("images"),
                Select {
                    field: "name".into(),
                    value: "recommender".into(),
                },
                key("newTag"),
            ],
        ),
        ("a[0][1].b", vec![key("a"), Index(0), Index(1), key("b")]),
        ("l.\"a.b/c\"", vec![key("l"), key("a.b/c")]),
    ] {
        assert_eq!(
            YamlPath::parse(raw).expect(raw).segments(),
            &want[..],
            "{raw}"
        );
    }
    for raw in [
        "", ".a", "a.", "a..b", "[0]", "a[", "a[x=]", "a[-1]", "a]b", "a\"b", "a[0]b",
    ] {
        assert!(
            matches!(YamlPath::parse(raw), Err(YamlEditError::InvalidPath { .. })),
            "{raw:?}"
        );
    }
}
