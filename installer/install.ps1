# Thin wrapper: runs installer\install.py with the first Python 3.8+ it finds, passing every option on.
# Usage: powershell -ExecutionPolicy Bypass -File installer\install.ps1 [options]   (see --help)
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$script = Join-Path $here "install.py"
$candidates = @(@("py", "-3"), @("python"), @("python3"))
foreach ($candidate in $candidates) {
    $exe = $candidate[0]
    $pre = @($candidate | Select-Object -Skip 1)
    if (-not (Get-Command $exe -ErrorAction SilentlyContinue)) { continue }
    & $exe @pre -c "import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)" 2>$null
    if ($LASTEXITCODE -ne 0) { continue }
    & $exe @pre $script @args
    exit $LASTEXITCODE
}
Write-Error "install.ps1: no Python 3.8 or newer found (tried py -3, python, python3). Install it from https://www.python.org, then run this again."
exit 1
