# Run an installed gem's declared executables with --help (runs inside the sandbox).
# Usage: ruby rubygems_execute.rb NAME GEM_HOME. Each run is bounded; its whole group is killed.
LIMIT_S = 20
name, home = ARGV.fetch(0), ARGV.fetch(1)
begin
  spec = Gem::Specification.find_by_name(name)
rescue Gem::LoadError => e
  warn "osptrack-execute: #{name}: #{e.message}"
  exit 3
end
ran = 0
spec.executables.each do |exe|
  path = File.join(home, "bin", exe)
  path = File.join(spec.bin_dir, exe) unless File.exist?(path)
  begin
    pid = Process.spawn(path, "--help", in: File::NULL, pgroup: true)
  rescue SystemCallError => e
    warn "osptrack-execute: #{exe}: cannot run: #{e.message}"
    next
  end
  deadline = Time.now + LIMIT_S
  status = nil
  while status.nil? && Time.now < deadline
    _, status = Process.wait2(pid, Process::WNOHANG)
    sleep 0.05 if status.nil?
  end
  if status.nil?
    Process.kill("KILL", -pid) rescue nil
    Process.wait(pid) rescue nil
    warn "osptrack-execute: #{exe} --help: timed out"
  else
    puts "osptrack-execute: #{exe} --help: exit #{status.exitstatus.inspect}"
  end
  ran += 1
end
puts "osptrack-execute: #{ran} executables run"
