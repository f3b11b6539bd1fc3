use netref::expose;

struct Thing;

#[expose]
impl Thing {
    #[exposed(property)]
    fn item(&self, index: usize) -> i64 {
        index as i64
    }

    #[exposed(property)]
    fn nothing(&self) {}

    #[exposed(property)]
    fn unit(&self) -> () {}
}

fn main() {}
