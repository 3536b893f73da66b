cgnet::cgnet! {
    model Odd {
        input: 3 x 64 x 64,
        classes: 19,
        stage3: { channels: 128, blocks: 21, dilation: 4, reduction: 7 },
    }
}

fn main() {}
