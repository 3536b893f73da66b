cgnet::cgnet! {
    pub network Oops {
        input: 3 x 64 x 64,
    }
}

fn main() {}
