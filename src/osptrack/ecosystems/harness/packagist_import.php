<?php
// Load vendor/autoload.php, then include every .php file of the package (inside the sandbox).
// Usage: php packagist_import.php NAME PROJECT. A fatal error in one file (a class declared
// twice, a missing parent class) kills PHP, so the files are included by child processes that
// resume after the file that killed their predecessor.
$name = $argv[1];
$project = $argv[2];
$pkgDir = "$project/vendor/$name";
$progress = sys_get_temp_dir() . "/osptrack-import-progress";

function package_files(string $dir): array {
    $files = [];
    if (!is_dir($dir)) return $files;
    $it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($dir, FilesystemIterator::SKIP_DOTS));
    foreach ($it as $file) {
        $path = $file->getPathname();
        if (str_ends_with($path, ".php") && !str_contains(substr($path, strlen($dir)), "/vendor/")) $files[] = $path;
    }
    sort($files);
    return $files;
}

if (($argv[3] ?? "") === "--child") {
    $start = (int)$argv[4];
    require "$project/vendor/autoload.php";
    $files = package_files($pkgDir);
    for ($i = $start; $i < count($files); $i++) {
        file_put_contents($progress, (string)$i);
        try {
            include_once $files[$i];
        } catch (Throwable $e) {
            fwrite(STDERR, "osptrack-import: {$files[$i]}: " . get_class($e) . ": " . substr($e->getMessage(), 0, 200) . "\n");
        }
    }
    file_put_contents($progress, "done");
    exit(0);
}

if (!is_file("$project/vendor/autoload.php")) {
    fwrite(STDERR, "osptrack-import: no vendor/autoload.php: the install phase did not complete\n");
    exit(3);
}
$files = package_files($pkgDir);
$start = 0;
$fatal = 0;
while ($start <= count($files) && $fatal < 50) {
    @unlink($progress);
    $cmd = [PHP_BINARY, __FILE__, $name, $project, "--child", (string)$start];
    $proc = proc_open($cmd, [0 => ["file", "/dev/null", "r"], 1 => STDOUT, 2 => STDERR], $pipes);
    proc_close($proc);
    $state = @file_get_contents($progress);
    if ($state === "done" || $state === false) break;
    fwrite(STDERR, "osptrack-import: fatal error in {$files[(int)$state]}\n");
    $fatal++;
    $start = (int)$state + 1;
}
echo "osptrack-import: " . (count($files) - $fatal) . "/" . count($files) . " files included\n";
exit(count($files) > 0 && $fatal === count($files) ? 1 : 0);
