import Testing
@Test func CKernelsTestsPlaceholder() { #expect(Bool(true)) }
