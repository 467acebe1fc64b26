import Testing
@Test func TuneKitTestsPlaceholder() { #expect(Bool(true)) }
