package blueprints

// FormatDiags is formatDiags for the external tests of this package.
var FormatDiags = formatDiags

// CheckGolden is checkGolden for the external tests.
var CheckGolden = checkGolden
