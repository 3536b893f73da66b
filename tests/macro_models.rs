//! Models built by `cgnet!` against the PyTorch goldens, and the bundled CamVid model.

mod common;

cgnet::cgnet! {
    /// The authors' CamVid model, as bundled with this repository.
    pub model CamVid {
        input: 3 x 360 x 480,
        classes: 11,
        mean: [105.65775, 103.329834, 99.625404],
        stage1: { channels: 32, convs: 3 },
        stage2: { channels: 64, blocks: 3, dilation: 2, reduction: 8 },
        stage3: { channels: 128, blocks: 21, dilation: 4, reduction: 16 },
        residual: global,
        input_injection: true,
        activation: prelu,
        global_context: true,
        weights: "weights/cgnet_camvid.safetensors",
        target: native,
    }
}

cgnet::cgnet! {
    /// The same model compiled for the 96x128 crop golden case.
    pub model CamVidCrop {
        input: 3 x 96 x 128,
        classes: 11,
        mean: [105.65775, 103.329834, 99.625404],
        weights: "weights/cgnet_camvid.safetensors",
    }
}

cgnet::cgnet! {
    model LocalResidual {
        input: 3 x 48 x 80,
        classes: 5,
        stage2: { blocks: 2 },
        stage3: { blocks: 3 },
        residual: local,
        input_injection: false,
        weights: "tests/golden/lrl_noinj_m2n3_c5_48x80.safetensors",
        target: avx2,
    }
}

cgnet::cgnet! {
    model ReluNoGlobal {
        input: 3x40x72,
        classes: 7,
        stage2: { blocks: 3 },
        stage3: { blocks: 4 },
        activation: relu,
        global_context: false,
        weights: "tests/golden/relu_noglo_m3n4_c7_40x72.safetensors",
        target: scalar,
    }
}

cgnet::cgnet! {
    /// The AVX-512 kernels, chosen explicitly (`target: native` picks them where the CPU has them).
    model TinyAvx512 {
        input: 3 x 37 x 53,
        classes: 4,
        stage2: { blocks: 1 },
        stage3: { blocks: 1 },
        weights: "tests/golden/tiny_m1n1_c4_37x53.safetensors",
        target: avx512,
    }
}

cgnet::cgnet! {
    /// The Rust NEON kernels (run under qemu-aarch64 by `.ci/run`).
    model NoResidualNeon {
        input: 3 x 33 x 65,
        classes: 3,
        stage2: { blocks: 2 },
        stage3: { blocks: 2 },
        residual: none,
        weights: "tests/golden/nores_m2n2_c3_33x65.safetensors",
        target: neon,
    }
}

cgnet::cgnet! {
    /// No weights at compile time: loaded at run time. (The derives compile
    /// against the generated fields.)
    #[derive(Clone, Debug, PartialEq)]
    model TinyLater {
        input: 3 x 37 x 53,
        classes: 4,
        stage2: { blocks: 1 },
        stage3: { blocks: 1 },
    }
}

/// Runs a macro model's three entry points and checks them against the golden case.
macro_rules! check_golden {
    ($model:expr, $ty:ty, $case:expr) => {{
        let model = $model;
        let golden = common::load($case);
        let mut arena = <$ty>::new_arena();
        let arena = arena.as_f32_mut();
        let shape = <$ty>::LOGITS_SHAPE;
        let mut logits = vec![0.0; shape.iter().product()];
        model.run(&golden.input.data, arena, &mut logits).unwrap();
        let mut labels = vec![0u8; <$ty>::LABELS_LEN];
        model.segment(&golden.input.data, arena, &mut labels).unwrap();
        let mut scores = vec![0.0; <$ty>::SCORES_SHAPE.iter().product()];
        model.scores(&golden.input.data, arena, &mut scores).unwrap();
        let t = cgnet_codegen::Tensor { c: shape[1], h: shape[2], w: shape[3], data: logits };
        let labels: Vec<i32> = labels.iter().map(|l| i32::from(*l)).collect();
        let ratio = golden.check(&t, &labels, stringify!($ty));
        eprintln!("{}: worst logit error = {ratio:.3} of tolerance", $case);
        assert_eq!(<$ty>::PARAMETERS, golden.spec.parameters.unwrap());

        // The 8-bit entry points: bit for bit the float ones on the normalised picture.
        let (spec, picture, own_image) = common::picture(&golden);
        assert_eq!(<$ty>::MEAN, spec.normalisation().0, "the model declares the mean its case was normalised with");
        let floats = spec.normalise_rgb8(&picture);
        let mut from_floats = vec![0.0; shape.iter().product()];
        model.run(&floats, arena, &mut from_floats).unwrap();
        let mut from_picture = vec![0.0; shape.iter().product()];
        model.run_rgb8(&picture, arena, &mut from_picture).unwrap();
        assert_eq!(common::bits(&from_picture), common::bits(&from_floats), "{}: run_rgb8", $case);
        let mut scores_floats = vec![0.0; <$ty>::SCORES_SHAPE.iter().product()];
        model.scores(&floats, arena, &mut scores_floats).unwrap();
        let mut scores_picture = vec![0.0; <$ty>::SCORES_SHAPE.iter().product()];
        model.scores_rgb8(&picture, arena, &mut scores_picture).unwrap();
        assert_eq!(common::bits(&scores_picture), common::bits(&scores_floats), "{}: scores_rgb8", $case);
        let mut labels_floats = vec![0u8; <$ty>::LABELS_LEN];
        model.segment(&floats, arena, &mut labels_floats).unwrap();
        let mut labels_picture = vec![0u8; <$ty>::LABELS_LEN];
        model.segment_rgb8(&picture, arena, &mut labels_picture).unwrap();
        assert_eq!(labels_picture, labels_floats, "{}: segment_rgb8", $case);
        if own_image {
            let t = cgnet_codegen::Tensor { c: shape[1], h: shape[2], w: shape[3], data: from_picture };
            let labels: Vec<i32> = labels_picture.iter().map(|l| i32::from(*l)).collect();
            let ratio = golden.check(&t, &labels, concat!(stringify!($ty), " from the 8-bit picture"));
            eprintln!("{} from the 8-bit picture: worst logit error = {ratio:.3} of tolerance", $case);
        }
    }};
}

#[test]
fn camvid_macro_model_matches_the_reference() {
    check_golden!(CamVidCrop::new(), CamVidCrop, "camvid_official_crop_96x128");
    if common::shared_golden_dir().is_none() {
        eprintln!("SKIPPED camvid_official_360x480 (the full frame): ../shared/golden is not beside the checkout");
        return;
    }
    check_golden!(CamVid::new(), CamVid, "camvid_official_360x480");
}

#[test]
fn local_residual_without_injection_matches() {
    if !cgnet::runtime::kernels::Isa::Avx2.is_supported() {
        eprintln!("SKIPPED: this CPU has no AVX2");
        return;
    }
    check_golden!(LocalResidual::new(), LocalResidual, "lrl_noinj_m2n3_c5_48x80");
}

#[test]
fn neon_target_matches() {
    if !cgnet::runtime::kernels::Isa::Neon.is_supported() {
        eprintln!("SKIPPED target: neon: this is not an AArch64 CPU (.ci/run runs this test under qemu-aarch64)");
        let err = NoResidualNeon::new().run(
            &[0.0; 3 * 33 * 65],
            NoResidualNeon::new_arena().as_f32_mut(),
            &mut [0.0; 3 * 5 * 9],
        );
        assert!(err.unwrap_err().to_string().contains("not supported by this CPU"));
        return;
    }
    check_golden!(NoResidualNeon::new(), NoResidualNeon, "nores_m2n2_c3_33x65");
}

#[test]
fn avx512_target_matches() {
    if !cgnet::runtime::kernels::Isa::Avx512.is_supported() {
        eprintln!("SKIPPED target: avx512 (no AVX-512 on this CPU)");
        let err =
            TinyAvx512::new().run(&[0.0; 3 * 37 * 53], TinyAvx512::new_arena().as_f32_mut(), &mut [0.0; 4 * 5 * 7]);
        assert!(err.unwrap_err().to_string().contains("not supported by this CPU"));
        return;
    }
    check_golden!(TinyAvx512::new(), TinyAvx512, "tiny_m1n1_c4_37x53");
}

#[test]
fn relu_without_global_context_matches() {
    check_golden!(ReluNoGlobal::new(), ReluNoGlobal, "relu_noglo_m3n4_c7_40x72");
}

#[test]
fn weights_loaded_at_run_time_match() {
    let path = common::golden_dir().join("tiny_m1n1_c4_37x53.safetensors");
    let model = TinyLater::from_path(&path).unwrap();
    let copy = model.clone();
    assert_eq!(copy, model);
    assert!(format!("{model:?}").contains("packed at run time"), "{model:?}");
    check_golden!(model, TinyLater, "tiny_m1n1_c4_37x53");
    check_golden!(copy, TinyLater, "tiny_m1n1_c4_37x53");
}

#[test]
fn wrong_sizes_and_weights_are_errors() {
    let model = TinyLater::from_path(common::golden_dir().join("tiny_m1n1_c4_37x53.safetensors")).unwrap();
    let mut arena = TinyLater::new_arena();
    let input = vec![0.0f32; 3 * 37 * 53];
    let mut logits = vec![0.0f32; TinyLater::LOGITS_SHAPE.iter().product()];
    let err = model.run(&input[1..], arena.as_f32_mut(), &mut logits).unwrap_err();
    assert_eq!(err.to_string(), format!("`input` has {} elements; this model needs {}", input.len() - 1, input.len()));
    let err = model.run(&input, &mut arena.as_f32_mut()[..10], &mut logits).unwrap_err();
    assert!(err.to_string().starts_with("the arena has 40 bytes"), "{err}");
    let err = model.run(&input, arena.as_f32_mut(), &mut logits[1..]).unwrap_err();
    assert!(err.to_string().starts_with("`logits` has"), "{err}");
    let mut labels = vec![0u8; 5];
    assert!(model.segment(&input, arena.as_f32_mut(), &mut labels).is_err());
    let picture = vec![0u8; 3 * 37 * 53 - 3];
    let err = model.run_rgb8(&picture, arena.as_f32_mut(), &mut logits).unwrap_err();
    assert_eq!(err.to_string(), format!("`picture` has {} elements; this model needs {}", picture.len(), input.len()));
    // Weights of another topology.
    let err = TinyLater::from_path(common::golden_dir().join("nores_m2n2_c3_33x65.safetensors")).err().unwrap();
    assert!(err.to_string().contains("does not match the model"), "{err}");
    assert!(TinyLater::from_path("/nonexistent.safetensors").is_err());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let model = CamVidCrop::new();
    let golden = common::load("camvid_official_crop_96x128");
    let mut arena = CamVidCrop::new_arena();
    let n: usize = CamVidCrop::LOGITS_SHAPE.iter().product();
    let (mut one, mut many) = (vec![0.0; n], vec![0.0; n]);
    model.run(&golden.input.data, arena.as_f32_mut(), &mut one).unwrap();
    let (_, picture, _) = common::picture(&golden);
    let mut one_rgb8 = vec![0.0; n];
    model.run_rgb8(&picture, arena.as_f32_mut(), &mut one_rgb8).unwrap();
    for threads in 2..=8 {
        let pool = cgnet::runtime::ThreadPool::new(threads).unwrap();
        model.run_parallel(&golden.input.data, arena.as_f32_mut(), &mut many, Some(&pool)).unwrap();
        assert!(one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()), "{threads} threads differ from one");
        model.run_rgb8_parallel(&picture, arena.as_f32_mut(), &mut many, Some(&pool)).unwrap();
        let same = one_rgb8.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "run_rgb8: {threads} threads differ from one");
    }
}
