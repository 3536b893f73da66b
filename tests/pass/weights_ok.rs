// The same tiny model with a matching weight file compiles and runs.
cgnet::cgnet! {
    model Tiny {
        input: 3 x 16 x 16,
        classes: 2,
        stage1: { channels: 4, convs: 1 },
        stage2: { channels: 4, blocks: 1, reduction: 2 },
        stage3: { channels: 8, blocks: 1, reduction: 2 },
        weights: "../../../../tests/ui/data/tiny_ok.safetensors",
        target: scalar,
    }
}

fn main() {
    let model = Tiny::new();
    let mut arena = Tiny::new_arena();
    let mut labels = vec![0u8; Tiny::LABELS_LEN];
    model.segment(&[0.0; 3 * 16 * 16], arena.as_f32_mut(), &mut labels).unwrap();
}
