// Load a NuGet package's assemblies and run their module initialisers (inside the sandbox).
// Compiled with mcs inside the sandbox by nuget_import.sh. Usage: mono nuget_import.exe DLL...
using System;
using System.Reflection;
using System.Runtime.CompilerServices;

public static class OsptrackImport {
    public static int Main(string[] args) {
        int failed = 0;
        foreach (string path in args) {
            try {
                Assembly asm = Assembly.LoadFrom(path);
                foreach (Module module in asm.GetModules()) {
                    // What the CLR does before first access to the module; forced here.
                    RuntimeHelpers.RunModuleConstructor(module.ModuleHandle);
                }
                Console.WriteLine("osptrack-import: loaded " + asm.FullName);
            } catch (Exception e) {
                failed++;
                Exception inner = e is TargetInvocationException && e.InnerException != null ? e.InnerException : e;
                Console.Error.WriteLine("osptrack-import: " + path + ": " + inner.GetType().Name + ": " + inner.Message);
            }
        }
        Console.WriteLine("osptrack-import: " + (args.Length - failed) + "/" + args.Length + " assemblies loaded");
        return args.Length > 0 && failed == args.Length ? 1 : 0;
    }
}
