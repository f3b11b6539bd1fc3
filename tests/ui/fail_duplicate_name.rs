use netref::expose;

struct Thing;

#[expose]
impl Thing {
    #[exposed]
    fn size(&self) -> i64 {
        1
    }

    #[exposed(name = "size")]
    fn len(&self) -> i64 {
        2
    }

    #[exposed(property, name = "size")]
    fn size_prop(&self) -> i64 {
        3
    }
}

fn main() {}
