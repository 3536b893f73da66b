cgnet::cgnet! {
    model NoClasses {
        input: 3 x 64 x 64,
    }
}

fn main() {
    let model = NoClasses::new();
    let _ = model;
}
