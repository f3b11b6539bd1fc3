use netref::expose;

struct Counter {
    value: i64,
}

#[expose]
impl Counter {
    #[exposed]
    fn inc(&mut self) -> i64 {
        self.value += 1;
        self.value
    }

    #[exposed]
    fn into_value(self) -> i64 {
        self.value
    }

    #[exposed]
    fn boxed(self: Box<Self>) -> i64 {
        self.value
    }

    #[exposed(property)]
    fn value(&mut self) -> i64 {
        self.value
    }
}

fn main() {}
