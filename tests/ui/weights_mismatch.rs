// One wrong shape and one missing key in the weight file: both reported, at the path.
cgnet::cgnet! {
    model Tiny {
        input: 3 x 16 x 16,
        classes: 2,
        stage1: { channels: 4, convs: 1 },
        stage2: { channels: 4, blocks: 1, reduction: 2 },
        stage3: { channels: 8, blocks: 1, reduction: 2 },
        weights: "../../../../tests/ui/data/tiny_bad.safetensors",
    }
}

fn main() {
    let _ = Tiny::new();
}
