import Testing
@Test func tuneTestsPlaceholder() { #expect(Bool(true)) }
