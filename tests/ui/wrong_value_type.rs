cgnet::cgnet! {
    model Words {
        input: 3 x 64 x 64,
        classes: "nineteen",
        input_injection: yes,
    }
}

fn main() {}
