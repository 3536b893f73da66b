cgnet::cgnet! {
    model Missing {
        input: 3 x 16 x 16,
        classes: 2,
        weights: "no/such/file.safetensors",
    }
}

fn main() {}
