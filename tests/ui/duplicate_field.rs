cgnet::cgnet! {
    model Twice {
        input: 3 x 64 x 64,
        classes: 19,
        activation: prelu,
        activation: relu,
    }
}

fn main() {}
