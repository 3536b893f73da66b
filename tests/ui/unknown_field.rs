cgnet::cgnet! {
    model Typo {
        input: 3 x 64 x 64,
        clases: 19,
    }
}

fn main() {
    let _ = Typo::ARENA_BYTES;
}
