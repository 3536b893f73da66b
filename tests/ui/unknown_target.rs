cgnet::cgnet! {
    model Tpu {
        input: 3 x 64 x 64,
        classes: 19,
        target: tpu,
    }
}

fn main() {}
