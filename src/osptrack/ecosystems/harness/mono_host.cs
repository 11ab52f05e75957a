// Run a Mono program, then leave with _exit(2) instead of Mono's runtime shutdown (inside the
// sandbox). Compiled with mcs by mono_host.py. Usage: mono mono_host.exe PROGRAM.exe [ARGS...]
//
// Why: Mono 6.8's shutdown aborts the thread-pool workers with a signal in a loop. Under
// strace --seccomp-bpf every signal stops the worker for the tracer, the worker never gets far
// enough to exit, and the process spins until the phase timeout (xbuild: 5 of 15 runs under
// `strace -f --seccomp-bpf`, 0 of 12 without strace's seccomp filter). ProcessExit fires after
// the program has finished (returned from Main or called Environment.Exit) and before that
// teardown, so leaving there keeps everything the program did and skips only the spin. The
// program's own ProcessExit handlers (a place to hide behaviour until exit) are run first.
using System;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;

public static class OsptrackMonoHost {
    [DllImport("libc", EntryPoint = "_exit")]
    static extern void Exit(int status);

    public static int Main(string[] args) {
        if (args.Length == 0) {
            Console.Error.WriteLine("usage: mono_host.exe PROGRAM.exe [ARGS...]");
            return 2;
        }
        string program = Path.GetFullPath(args[0]);
        string[] rest = new string[args.Length - 1];
        Array.Copy(args, 1, rest, 0, rest.Length);
        // A domain of its own, so the program gets its own .config (xbuild's binding redirects).
        string config = program + ".config";
        var setup = new AppDomainSetup {
            // With the separator, as bare Mono gives it: code does `BaseDirectory + "file"`.
            ApplicationBase = Path.GetDirectoryName(program) + Path.DirectorySeparatorChar,
            ConfigurationFile = File.Exists(config) ? config : null,
        };
        AppDomain domain = AppDomain.CreateDomain(Path.GetFileName(program), null, setup);
        // The host, so that RunProgramsProcessExit can run there: the program's folder lacks it.
        domain.Load(File.ReadAllBytes(typeof(OsptrackMonoHost).Assembly.Location));
        AppDomain.CurrentDomain.ProcessExit += (sender, e) => {
            try {
                domain.DoCallBack(RunProgramsProcessExit);
            } catch (Exception ex) {
                // A handler that throws ends the handlers, as under bare Mono; say so.
                Console.Error.WriteLine("osptrack-mono-host: ProcessExit: " + ex.GetBaseException().Message);
            }
            Console.Out.Flush();
            Console.Error.Flush();
            Exit(Environment.ExitCode);
        };
        Environment.ExitCode = domain.ExecuteAssembly(program, rest);
        return Environment.ExitCode;
    }

    // Runs in the program's domain: Mono raises ProcessExit in the root domain only.
    static void RunProgramsProcessExit() {
        FieldInfo field = typeof(AppDomain).GetField("ProcessExit", BindingFlags.NonPublic | BindingFlags.Instance);
        var handlers = field == null ? null : field.GetValue(AppDomain.CurrentDomain) as EventHandler;
        try {
            if (handlers != null) {
                handlers(AppDomain.CurrentDomain, EventArgs.Empty);
            }
        } finally {
            Console.Out.Flush();
            Console.Error.Flush();
        }
    }
}
