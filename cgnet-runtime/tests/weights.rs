//! The weight loader's conventions and error paths, on files written here.

use cgnet_runtime::{ExpectedParam, WeightError, WeightProblem, Weights};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn file(entries: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.to_string(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()))
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn expected() -> Vec<ExpectedParam> {
    vec![
        ExpectedParam { key: "level1_0.conv.weight".into(), shape: vec![2, 1] },
        ExpectedParam { key: "classifier.0.conv.weight".into(), shape: vec![3] },
    ]
}

fn problems(bytes: &[u8]) -> Vec<WeightProblem> {
    match Weights::from_bytes(bytes, "test.safetensors", &expected()) {
        Err(WeightError::Mismatch { problems, .. }) => problems,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn authors_checkpoint_conventions_load() {
    let bytes = file(&[
        ("module.level1_0.conv.weight", Dtype::F32, vec![2, 1], f32_bytes(&[1.0, -2.0])),
        ("module.classifier.conv.weight", Dtype::F32, vec![3], f32_bytes(&[0.5, 0.25, 4.0])),
        ("module.b1.bn.num_batches_tracked", Dtype::I64, vec![], 7i64.to_le_bytes().to_vec()),
    ]);
    let w = Weights::from_bytes(&bytes, "t", &expected()).unwrap();
    assert_eq!(w.get("level1_0.conv.weight").unwrap(), &[1.0, -2.0]);
    assert_eq!(w.get("classifier.0.conv.weight").unwrap(), &[0.5, 0.25, 4.0]);
}

#[test]
fn half_precision_is_widened() {
    let f16: Vec<u8> = [1.5f32, -0.25].iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
    let bf16: Vec<u8> = [2.0f32, 3.0, -8.0].iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
    let bytes = file(&[
        ("level1_0.conv.weight", Dtype::F16, vec![2, 1], f16),
        ("classifier.0.conv.weight", Dtype::BF16, vec![3], bf16),
    ]);
    let w = Weights::from_bytes(&bytes, "t", &expected()).unwrap();
    assert_eq!(w.get("level1_0.conv.weight").unwrap(), &[1.5, -0.25]);
    assert_eq!(w.get("classifier.0.conv.weight").unwrap(), &[2.0, 3.0, -8.0]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let bytes = file(&[
        ("level1_0.conv.weight", Dtype::F64, vec![2, 1], vec![0; 16]),
        ("level9.conv.weight", Dtype::F32, vec![1], f32_bytes(&[1.0])),
    ]);
    let p = problems(&bytes);
    assert!(
        p.contains(&WeightProblem::UnsupportedDtype { key: "level1_0.conv.weight".into(), dtype: "F64".into() }),
        "{p:?}"
    );
    assert!(p.contains(&WeightProblem::Missing { key: "classifier.0.conv.weight".into(), shape: vec![3] }), "{p:?}");
    assert!(p.contains(&WeightProblem::Unexpected { key: "level9.conv.weight".into() }), "{p:?}");
    assert_eq!(p.len(), 3);
}

#[test]
fn wrong_shapes_name_both_shapes() {
    let bytes = file(&[
        ("level1_0.conv.weight", Dtype::F32, vec![1, 2], f32_bytes(&[1.0, 2.0])),
        ("classifier.0.conv.weight", Dtype::F32, vec![3], f32_bytes(&[0.0; 3])),
    ]);
    let p = problems(&bytes);
    assert_eq!(
        p,
        vec![WeightProblem::WrongShape { key: "level1_0.conv.weight".into(), expected: vec![2, 1], found: vec![1, 2] }]
    );
    assert_eq!(p[0].to_string(), "wrong shape for `level1_0.conv.weight`: expected [2, 1], found [1, 2]");
}

#[test]
fn two_spellings_of_one_key_are_a_conflict() {
    let bytes = file(&[
        ("level1_0.conv.weight", Dtype::F32, vec![2, 1], f32_bytes(&[1.0, 2.0])),
        ("classifier.0.conv.weight", Dtype::F32, vec![3], f32_bytes(&[0.0; 3])),
        ("classifier.conv.weight", Dtype::F32, vec![3], f32_bytes(&[0.0; 3])),
    ]);
    assert!(matches!(&problems(&bytes)[..], [WeightProblem::Duplicate { .. }]));
}

#[test]
fn truncated_and_garbage_files_are_format_errors() {
    let bytes = file(&[("level1_0.conv.weight", Dtype::F32, vec![2, 1], f32_bytes(&[1.0, 2.0]))]);
    for cut in [0, 4, 8, 20, bytes.len() - 1] {
        let err = Weights::from_bytes(&bytes[..cut], "cut.safetensors", &expected()).unwrap_err();
        assert!(matches!(err, WeightError::Format { .. }), "cut at {cut}: {err:?}");
        assert!(err.to_string().starts_with("cut.safetensors is not a valid safetensors file"), "{err}");
    }
    let err = Weights::from_bytes(b"\xff\xff\xff\xff\xff\xff\xff\xffjunk", "junk", &expected()).unwrap_err();
    assert!(matches!(err, WeightError::Format { .. }));
}

#[test]
fn missing_files_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Weights::load(&dir.path().join("nope.safetensors"), &expected()).unwrap_err();
    assert!(matches!(err, WeightError::Io { .. }), "{err:?}");
}
