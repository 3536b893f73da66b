cgnet::cgnet! {
    model Gray {
        input: 1 x 4 x 64,
        classes: 19,
    }
}

fn main() {}
