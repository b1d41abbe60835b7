namespace medic::cli {}
