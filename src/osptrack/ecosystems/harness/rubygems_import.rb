# Require every file under an installed gem's require_paths (runs inside the sandbox).
# Usage: ruby rubygems_import.rb NAME. One failing require does not stop the others.
name = ARGV.fetch(0)
begin
  spec = Gem::Specification.find_by_name(name)
  spec.activate
rescue Gem::LoadError => e
  warn "osptrack-import: #{name}: #{e.message}"
  exit 3
end

files = []
spec.require_paths.each do |rp|
  base = File.join(spec.full_gem_path, rp)
  Dir.glob(File.join(base, "**", "*.{rb,so}")).each do |f|
    files << f.delete_prefix(base + "/").sub(/\.(rb|so)\z/, "")
  end
end
# The gem's own entry point first (what `require "name"` loads), then shallow before deep.
files = files.uniq.sort_by { |f| [f == name || f == name.tr("-", "/") ? 0 : 1, f.count("/"), f] }

failed = 0
files.each do |f|
  begin
    require f
  rescue Exception => e # rubocop:disable Lint/RescueException -- a package may raise anything, even SystemExit
    failed += 1
    warn "osptrack-import: #{f}: #{e.class}: #{e.message.to_s[0, 200]}"
  end
end
puts "osptrack-import: #{files.size - failed}/#{files.size} files required"
$stdout.flush
exit!(files.any? && failed == files.size ? 1 : 0)
