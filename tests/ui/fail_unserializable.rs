use netref::expose;

struct Opaque;

struct Thing;

#[expose]
impl Thing {
    #[exposed]
    fn make(&self) -> Opaque {
        Opaque
    }

    #[exposed]
    fn take(&self, _o: Opaque) {}
}

fn main() {}
