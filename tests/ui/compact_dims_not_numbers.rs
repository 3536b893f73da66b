cgnet::cgnet! {
    model Named {
        input: 3xHxW,
        classes: 19,
    }
}

cgnet::cgnet! {
    model Truncated {
        input: 3x64x,
        classes: 19,
    }
}

fn main() {}
